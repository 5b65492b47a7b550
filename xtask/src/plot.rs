//! Plots for benchmark reports: CPU share over time, as SVG.
