"""Pure figure functions: tidy DataFrames -> plotly figures (no torch, no ipywidgets)."""
