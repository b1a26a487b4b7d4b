"""Pipeline Gateway: the function app's logic, kept free of the Functions framework where it can be."""
