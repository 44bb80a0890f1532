"""The ingress deployment: the HTTP API (OpenAI's Videos API plus sessions), its request and
response models and the service logic behind them. It imports other deployments' protocols only."""
