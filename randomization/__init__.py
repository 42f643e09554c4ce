"""Domain-randomization terms and curricula; ranges are YAML data (DESIGN contract 5)."""
