"""Builds the `tiny` profile's weights offline (see i2v_testing/tiny_models.py).

python scripts/build_tiny_models.py [OUT_DIR]   # default: models/tiny
"""

from i2v_testing.tiny_models import main

if __name__ == "__main__":
    main()
