"""Fraud detectors: tracking-number validation, rules and the classifier. No I/O of their own."""
