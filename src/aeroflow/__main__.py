from aeroflow.cli import app

app(prog_name="aeroflow")
