"""What changes the series: rebase, drift, regenerate/import, split. They never import each other."""
