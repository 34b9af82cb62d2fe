"""Reporting: the text and HTML reports, plots, model cards, comparisons, TensorBoard."""
