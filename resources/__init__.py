"""The studio's bundled data, installed as the package ``equigen_resources``.

``models/`` (generator model files), ``examples/`` (INR files, example packs) and ``icons/``.
Code finds them through ``engine.bundled`` (``importlib.resources``), so they resolve the same in
a checkout, an editable install and an installed wheel.
"""
