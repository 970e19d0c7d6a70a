"""NQ options order flow: instrument definitions, trade pressure windows, DBN replay.

- instruments: definitions → InstrumentMap (strike, call/put, expiration, underlying, multiplier)
- aggregator: PressureAggregator, vectorized over DBN MBO record arrays → PressureWindow
- replay: DBN files/folders through the same ingestion path as the live session
- generator: labelled NQ options sessions written as real DBN files
- backfill: gap → historical backfill within a daily budget
"""
