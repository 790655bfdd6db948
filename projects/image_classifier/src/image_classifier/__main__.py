from image_classifier.cli import app

app()
