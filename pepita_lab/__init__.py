"""pepita-lab: study PEPITA, a learning rule that trains without a backward pass."""

__version__ = "0.1.0"
