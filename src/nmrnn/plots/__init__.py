"""Figure makers: one module per figure of the paper, each computing or loading what it draws."""
