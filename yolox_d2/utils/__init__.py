"""Small helpers shared by several parts of yolox_d2 (file paths, collectives)."""
