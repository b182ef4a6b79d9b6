"""Clinical inputs and outputs of ``sepnet predict``: RT Structure Set, per-organ statistics, preview, report.

* :mod:`~sepnet_core.clinical.contours`: outlines of a 2D mask along pixel edges.
* :mod:`~sepnet_core.clinical.rtstruct`: DICOM RT Structure Set of a label map (pydicom).
* :mod:`~sepnet_core.clinical.statistics`: organ volume, mean HU and uncertainty, high-uncertainty flag.
* :mod:`~sepnet_core.clinical.preview`: PNG with axial, coronal and sagittal views.
* :mod:`~sepnet_core.clinical.report`: provenance of a prediction (versions, checkpoint hashes).
* :mod:`~sepnet_core.clinical.outputs`: the optional outputs of ``sepnet predict``, written together.

Reading DICOM CT series lives in :mod:`sepnet_core.data.dicom`. Submodules are imported on demand
(pydicom and matplotlib load only when used).
"""
