"""EquiGen Studio: the Qt desktop front end over the engine."""
