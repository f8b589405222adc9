"""Caption images with Gemini, in a terminal app or headless."""
