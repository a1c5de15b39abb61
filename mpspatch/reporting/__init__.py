"""The checklist, readiness and the rendered documents."""
