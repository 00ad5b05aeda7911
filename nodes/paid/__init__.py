"""paid"""
