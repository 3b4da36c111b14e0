"""Accuracy assessment: the confusion matrix and its scores, a map against a reference, and the reports."""
