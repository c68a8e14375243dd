"""PDF report built from results.json and the saved volumes."""
