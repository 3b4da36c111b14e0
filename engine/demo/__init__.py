"""The end-to-end demonstration on generated data (run), its report, and the generator of synthetic scenes."""

from .run import FULL, QUICK, REPORT, SUMMARY, DemoRecipe, run_demo, train_with_recipe

__all__ = ["FULL", "QUICK", "REPORT", "SUMMARY", "DemoRecipe", "run_demo", "train_with_recipe"]
