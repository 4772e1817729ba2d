"""The five stages. Each folder: `router.py` (which topic it handles, in one look) and
`logic.py` (the stage's own work). Services never import each other."""
