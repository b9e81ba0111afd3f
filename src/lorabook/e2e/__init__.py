"""The E2E NLG Challenge experiment (Table 3 of the paper): data, decoding and metrics."""
