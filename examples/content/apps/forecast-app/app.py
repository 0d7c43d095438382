"""Demand forecast: a small Flask app reading features from Databricks."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/forecast")
def forecast():
    # On Connect the Databricks integration supplies the token per request.
    sku = request.args.get("sku", "all")
    return jsonify({"sku": sku, "weeks": 4, "source": "databricks"})
