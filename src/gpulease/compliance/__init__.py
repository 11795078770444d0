"""Compliance: parties and ownership, screening lists, name matching, policy packs, KYC."""
