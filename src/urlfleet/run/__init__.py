"""Running a list: joblib threads take jobs from the frontier and stream results back."""
