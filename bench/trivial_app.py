import modal

app = modal.App("bench-trivial")


@app.function()
def noop(x):
    return x
