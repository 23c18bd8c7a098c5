"""A study in its storage: the storage itself, the study's life (created, checked, deleted),
its units and their states, and the claims that give each unit to exactly one worker."""
