"""Running a run: the one Ray launcher, the step loop, the preflight, progress and samples while
training, stop requests, logging and live tracking. The only package of training/ shared code that
may import Ray (inside functions)."""
