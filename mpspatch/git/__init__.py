"""The git CLI as typed verbs, the shadow repository and the series as commits."""
