"""Who still calls each version: counted per caller by every worker, summed for the group."""
