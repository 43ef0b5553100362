"""Applications: command-line tool, web app, training and evaluation front ends."""

import mum  # noqa: F401  (sets the CPU threading policy before torch is imported)
