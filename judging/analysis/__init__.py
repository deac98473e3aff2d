"""Read models and analyses over the database: dashboard, evidence, recommendation, exports."""
