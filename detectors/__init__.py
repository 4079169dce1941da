"""Fraud detectors, pure: a shipment's facts, tracking-number validation, places, rules, features, the
classifier and its reasons. Frames in; findings, features and probabilities out (`tracker.detection` reads
the store for them and stores what they find)."""
