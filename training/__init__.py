"""Research code apart from the product: dataset readers and converters, training and scoring of vsearch's
re-ID model, and retrieval measured on footage with ground truth. `vsearch` never imports it at module level."""
