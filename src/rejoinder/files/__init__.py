"""The Files API: uploads streamed into the database in parts, owned by the uploading principal."""
