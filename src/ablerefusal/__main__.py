from ablerefusal.cli import app

app()
