"""docqa's Streamlit app. It only calls rag/ and ingest/ public functions."""
