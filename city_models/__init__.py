"""city_models package."""
