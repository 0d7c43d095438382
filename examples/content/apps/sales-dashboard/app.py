"""Sales dashboard: quarterly sales with sign-in through the company's Keycloak."""

from pathlib import Path

import pandas as pd
from shiny import App, render, ui

sales = pd.read_csv(Path(__file__).parent / "data" / "sales.csv")

app_ui = ui.page_fluid(
    ui.include_css(Path(__file__).parent / "www" / "styles.css"),
    ui.h2("Quarterly sales"),
    ui.input_select("region", "Region", sorted(sales["region"].unique())),
    ui.output_table("table"),
)


def server(input, output, session):
    @render.table
    def table():
        return sales[sales["region"] == input.region()]


app = App(app_ui, server)
