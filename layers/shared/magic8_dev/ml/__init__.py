"""Training: data generation on real days, the model hierarchy, reports, market seeding."""
