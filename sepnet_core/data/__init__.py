"""Data layer: StructSeg-layout NIfTI I/O, geometry, cropping, patch sampling and the phantom."""
