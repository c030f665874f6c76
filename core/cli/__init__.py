"""`python -m core`: one module per command group (main: data, training and runs; jobs; presets; compression)."""
