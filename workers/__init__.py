"""framefleet workers: decode images, run models, write results."""
