"""The files a mapping run writes: the class and confidence GeoTIFFs with their styles and quicklook, the
per-class area tables, and coarser legends (collapse)."""
