"""The data model and the checkpoint registry: engine, typed models, migrations, prompts."""
