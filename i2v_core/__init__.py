"""The shared core every process imports: domain types, config models, errors in OpenAI's shape,
image decoding, logging, metrics, the job store, the artifact store and the schema migrations.
It imports no deployment and no ML library."""
