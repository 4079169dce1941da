"""Order-tracking fraud detector with a case tracker."""

__version__ = "0.1.0"
