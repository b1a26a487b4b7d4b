"""One adapter per kind of target: everything that differs between ADF, Synapse and Spark lives here."""
