"""Jobs: lists of tasks (inputs, hashed config, output files, a function that writes them) run by an executor
(`local` in process, `ray` on a cluster), with output folders that are never an input and have one writer at a
time. The reconstruct and mask jobs live here, with the one per-mouse loader they share with the analyses."""
