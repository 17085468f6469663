"""Size and placement of the table (shared by the table-top mesh generator and the task scene)."""

TABLE_HALF_SIZE = (0.7, 0.75, 0.45)  # the table's top surface is at z = 0
TABLE_CENTER_X = -0.2
