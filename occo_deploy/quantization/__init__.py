"""Where Q/DQ goes in the graph (``placement``) and the ranges calibration measures for it
(``ranges``, ``histograms``): graph analysis and statistics, below ``engines`` and every backend."""
