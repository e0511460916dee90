"""Dashboard pages: each file is run by st.navigation from dashboard/app.py.

Not named `pages/`: Streamlit would also treat that directory as a legacy multipage app.
"""
