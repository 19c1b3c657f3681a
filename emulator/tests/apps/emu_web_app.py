"""An app with a web endpoint: the emulator must refuse it at deploy, naming the feature."""

import modal

app = modal.App("emu-web")


@app.function()
@modal.fastapi_endpoint()
def hello():
    return "hi"
