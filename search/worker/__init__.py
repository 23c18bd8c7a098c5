"""Workers: the loop that claims, trains and records units, the objective it runs, the
process set-up around it, the pool of local worker processes and the progress view."""
